"""Image processing for the image service and ``corelane images``: pure functions, bytes in/out.

::

    from corelane.imaging import ImageLimits, ProcessOptions, process_image, probe

    result = process_image(data, ProcessOptions(sizes=(1024, 512, 128), format="webp"))
    result.outputs[512]     # encoded bytes, long edge 512 (or the source size if smaller)
    result.features         # JSON-serializable dict (with blurhash, focal, sha256), or None
    result.crops["1:1"][512]  # with crops="1:1": a square around the focal point

Modules beside the pipeline: ``blurhash`` (encode/decode placeholders), ``focal`` (faces,
saliency, crop boxes), ``similar`` (``HashIndex``, ``group_duplicates``).

Every refusal raises :class:`corelane.errors.BadImage` with what and why. No file I/O: callers
decide where bytes come from and go. See docs/imaging.md.
"""

from corelane.imaging._open import probe
from corelane.imaging.features import hamming
from corelane.imaging.ops import process_image
from corelane.imaging.options import (
    ImageLimits,
    ProcessedImage,
    ProcessOptions,
    parse_crops,
    parse_sizes,
)

__all__ = [
    "ImageLimits",
    "ProcessOptions",
    "ProcessedImage",
    "hamming",
    "parse_crops",
    "parse_sizes",
    "probe",
    "process_image",
]
