"""ShapeNet (3D-R2N2 renderings + ShapeNetVox32, Pix2Vox split JSON) for multi-view reconstruction."""
from .dataset import MissingShapeNetFilesWarning, ShapeNetDataset, read_split_file  # noqa: F401
from .transforms import (ColorJitterViews, CropResizeViews, LoadBinvox, LoadReconViews,  # noqa: F401
                         PackReconInputs, RandomBackground)
from .silhouettes import PackReconSilhouettes, ViewSilhouettes  # noqa: F401
