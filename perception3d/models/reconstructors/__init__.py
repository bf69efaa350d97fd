"""Multi-view object reconstructors (images -> 32³ occupancy): the shared base, LRGT, a Pix2Vox++-style baseline,
the Gaussian reconstruction head and the silhouette pretraining of their image encoders."""
from .base import GRID_SIZE, BaseReconstructor, recon_images  # noqa: F401
from .gaussian_head import GaussianSplatDecoder  # noqa: F401
from .losses import bce_loss, dice_loss, occupancy_losses  # noqa: F401
from .lrgt import LRGT, AttentionTokenMerger, MultiViewViT, ProgressiveVoxelDecoder  # noqa: F401
from .token_merger import SimilarTokenMerger, dpc_knn_clusters  # noqa: F401
from .pix2vox import ContextAwareFusion, Pix2Vox, Pix2VoxDecoder, Pix2VoxEncoder, Pix2VoxRefiner  # noqa: F401
from .pretrainer import ReconImagePretrainer, SilhouetteHead  # noqa: F401
