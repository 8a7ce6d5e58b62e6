"""Training options: one frozen dataclass tree, loaded from TOML (or YAML) and overridden by dotted keys.

Defaults follow the authors' ``options/train_gfpgan_v1.yml`` (GFPGANv1, 512 px) except where a field
comment says otherwise; ``configs/gfpgan_v1_512.toml`` spells every value out.

    cfg = load_config("training/configs/tiny_cpu.toml", overrides=["losses.l1_weight=0.5"])
    cfg.losses.l1_weight  # 0.5
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidrestore.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    train_dir: str = ""                       # folder of aligned faces (png/jpg), FFHQ layout
    component_file: str | None = None         # JSON boxes per image (see dataset.py); None: no components
    landmarks_file: str | None = None         # JSON 5-point landmarks per image -> component boxes
    template_components: bool = False         # boxes from the FFHQ 5-point template (aligned crops
                                              # without a component/landmarks file)
    video_dir: str | None = None              # optional folder of videos (decord random frame access)
    video_landmarks_dir: str | None = None    # <video stem>.json: {frame: [[x, y] x5]} -> aligned crops
    val_dir: str | None = None                # held-out GT faces; LQ made with a fixed seed per image
    val_lq_dir: str | None = None             # optional real LQ inputs, same file names as val_dir
    val_max_images: int = 100
    use_hflip: bool = True
    eye_enlarge_ratio: float = 1.4
    batch_size: int = 3                       # per GPU (the authors: 3 x 4 GPUs)
    num_workers: int = 6

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "data.batch_size must be >= 1")
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")


@dataclass(frozen=True, kw_only=True)
class DegradationConfig:
    blur_kernel_size: int = 41
    kernel_list: tuple[str, ...] = ("iso", "aniso")
    kernel_prob: tuple[float, ...] = (0.5, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 10.0)
    downsample_range: tuple[float, float] = (0.8, 8.0)
    noise_range: tuple[float, float] = (0.0, 20.0)    # Gaussian noise std in 0-255 units
    jpeg_range: tuple[float, float] = (60.0, 100.0)
    color_jitter_prob: float = 0.3
    color_jitter_shift: float = 20.0                  # in 0-255 units, per channel, uniform +-
    gray_prob: float = 0.01
    gt_gray: bool = False                             # also turn the GT gray (no colourisation)
    color_jitter_pt_prob: float = 0.3                 # the authors' second jitter, on the LQ tensor
    brightness: tuple[float, float] = (0.5, 1.5)      # factor ranges of that jitter (torchvision's
    contrast: tuple[float, float] = (0.5, 1.5)        # adjust_*, applied in a random order)
    saturation: tuple[float, float] = (0.0, 1.5)
    hue: tuple[float, float] = (-0.1, 0.1)

    def __post_init__(self) -> None:
        _check(self.blur_kernel_size % 2 == 1, "degradation.blur_kernel_size must be odd")
        _check(len(self.kernel_list) == len(self.kernel_prob) and set(self.kernel_list) <= {"iso", "aniso"},
               "degradation.kernel_list must name 'iso'/'aniso' with one probability each")
        for name in ("blur_sigma", "downsample_range", "noise_range", "jpeg_range", "brightness", "contrast",
                     "saturation", "hue"):
            lo, hi = getattr(self, name)
            _check(lo <= hi, f"degradation.{name} must be [low, high]")
        _check(self.blur_sigma[0] > 0 and self.downsample_range[0] > 0, "blur sigma/downsample must be > 0")
        _check(1 <= self.jpeg_range[0] and self.jpeg_range[1] <= 100, "degradation.jpeg_range within 1..100")
        _check(0 <= self.color_jitter_pt_prob <= 1, "degradation.color_jitter_pt_prob within 0..1")
        _check(-0.5 <= self.hue[0] and self.hue[1] <= 0.5, "degradation.hue within -0.5..0.5")
        _check(self.brightness[0] >= 0 and self.contrast[0] >= 0 and self.saturation[0] >= 0,
               "degradation.brightness/contrast/saturation factors must be >= 0")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    out_size: int = 512
    channel_multiplier: int = 2               # clean GFPGAN v1.2+ (the v1 paper model used 1)
    num_style_feat: int = 512
    narrow: float = 1.0                       # < 1 only for small test models
    pretrained: str | None = None             # fine-tune: a GFPGAN checkpoint (params_ema -> G and EMA)
    decoder_path: str | None = None           # StyleGAN2 clean checkpoint, params_ema -> stylegan_decoder.*
    freeze_decoder: bool = True
    d_channel_multiplier: int = 1
    d_narrow: float = 1.0
    component_discriminators: bool = True     # needs data.component_file, landmarks_file or template_components
    component_width: float = 1.0              # < 1 only for small test models
    arcface_path: str | None = None           # ResNetArcFace-18 weights (needed when identity_weight > 0);
                                              # "random": random weights (tests/debug only)
    vgg_path: str | None = None               # torchvision vgg19 ImageNet weights (needed when perceptual or
                                              # style weight > 0); "random": random weights (tests only)
    aux_width: float = 1.0                    # tests only: narrows random-weight VGG-19 and ArcFace

    def __post_init__(self) -> None:
        _check(self.out_size >= 16 and self.out_size & (self.out_size - 1) == 0,
               "model.out_size must be a power of two >= 16")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    l1_weight: float = 0.1
    pyramid_weight: float = 1.0
    pyramid_loss_iters: int = 50_000          # the authors' remove_pyramid_loss
    perceptual_weight: float = 1.0
    style_weight: float = 50.0
    perceptual_layers: dict[str, float] = field(default_factory=lambda: {
        "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0})
    gan_weight: float = 0.1
    r1_weight: float = 10.0
    d_reg_every: int = 16
    component_gan_weight: float = 1.0
    comp_style_weight: float = 200.0
    identity_weight: float = 10.0

    def __post_init__(self) -> None:
        _check(self.d_reg_every >= 1, "losses.d_reg_every must be >= 1")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    lr_component: float = 2e-3
    grad_clip: float = 0.0                    # max global grad norm for G and D; 0 = off


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    total_iters: int = 800_000
    milestones: tuple[int, ...] = (600_000, 700_000)
    gamma: float = 0.5


@dataclass(frozen=True, kw_only=True)
class EMAConfig:
    decay: float = 0.9977843871               # the authors' 0.5 ** (32 / 10000)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    accumulate: int = 1                       # micro-batches per optimiser step and rank (gradient
                                              # accumulation): global batch = batch_size x ranks x this

    def __post_init__(self) -> None:
        _check(self.accumulate >= 1, "train.accumulate must be >= 1")


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    out_dir: str = "experiments/gfpgan"
    log_every: int = 100
    val_every: int = 5_000
    save_every: int = 5_000
    sample_every: int = 5_000
    keep_checkpoints: int = 3                 # training-state checkpoints kept (0 = all)
    val_metrics: tuple[str, ...] = ("psnr", "ssim")   # any of training.evaluate's metrics, logged as val_<name>
    val_metric_files: dict[str, str] = field(default_factory=dict)   # registry name -> path or "random"
                                              # (alexnet, inception_fid, arcface_resnet18, niqe_pris_params)
    tensorboard: bool = True                  # used when tensorboard is installed


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    seed: int = 0
    device: str = "auto"                      # auto | cpu | cuda | cuda:N
    precision: Precision = "fp32"             # bf16/fp16 autocast on CUDA; fp16 adds a GradScaler
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    logging: LogConfig = field(default_factory=LogConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        _check(self.precision in ("fp32", "bf16", "fp16"), "precision must be fp32, bf16 or fp16")


# ----------------------------------------------------------------------------------------------
# building from plain dicts, files and dotted overrides

def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert a TOML/YAML/command-line value to the annotated type ``tp`` (ConfigError otherwise)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors) or f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {args}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("[]() ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"{where} needs {len(item_types)} values, got {len(value)}")
        return tuple(_convert(v.strip() if isinstance(v, str) else v, t, where)
                     for v, t in zip(value, item_types))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where} must be true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported option type {tp!r}")  # pragma: no cover


def from_dict(cls: type, data: dict[str, Any], *, where: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts; unknown keys are errors (typos must not pass)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join((where + '.' if where else '') + u for u in unknown)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as nested plain dicts/lists (for TOML/JSON dumps and checkpoints)."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return {f.name: (to_dict(getattr(cfg, f.name)) if dataclasses.is_dataclass(getattr(cfg, f.name))
                     else plain(getattr(cfg, f.name))) for f in dataclasses.fields(cfg)}


def _parse_cli_value(text: str) -> Any:
    """A command-line value: TOML literal when it parses (numbers, bools, lists), else the raw string."""
    import tomllib
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to nested dicts (copied); values are converted later by type."""
    import copy
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.option=value")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = _parse_cli_value(text.strip())
    return out


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or, with PyYAML installed, YAML) file into nested dicts."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path=path)
    text = path.read_text()
    if path.suffix in (".yml", ".yaml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML configs need PyYAML: pip install pyyaml (or use TOML)", path=path) from None
        data = yaml.safe_load(text) or {}
    else:
        import tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("top level must be a table", path=path)
    return data


def load_config(path: str | Path | None = None, *, overrides: list[str] = ()) -> TrainConfig:
    """Defaults <- file (if any) <- overrides. Raises ConfigError naming the bad option."""
    data = read_file(path) if path is not None else {}
    data = apply_overrides(data, list(overrides))
    try:
        return from_dict(TrainConfig, data)
    except ConfigError as exc:
        if path is not None and exc.path is None:
            raise ConfigError(exc.message, path=path) from None
        raise


def dump_toml(cfg: TrainConfig) -> str:
    """The full config as TOML text (written next to every run for reproducibility)."""
    def value(v: Any) -> str:
        if v is None:
            return '"none"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return repr(v)
    d = to_dict(cfg)
    lines = [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict) or k == "__never__"]
    for k, v in d.items():
        if isinstance(v, dict) and dataclasses.is_dataclass(getattr(cfg, k)):
            lines.append(f"\n[{k}]")
            lines.extend(f"{kk} = {value(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"
