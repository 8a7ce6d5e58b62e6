"""Output resolution (``--upscale``): sizes, Lanczos/bilinear resizing, the Real-ESRGAN upsampler
behind the torch / onnxruntime / TensorRT backends, tiling, and the frame stage the pipeline runs."""
