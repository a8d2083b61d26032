"""vvc-grid method specification (registered under `nerfstudio.method_configs`)."""

from __future__ import annotations

from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from nerfstudio_vvc.data.datamanager import FrameDataManagerConfig
from nerfstudio_vvc.methods.vvc_grid.model import VvcGridModelConfig
from nerfstudio_vvc.training.trainer import FrameSequentialTrainerConfig

vvc_grid = MethodSpecification(
    config=FrameSequentialTrainerConfig(
        method_name="vvc-grid",
        gop_size=20,
        iframe_iterations=600,
        pframe_iterations=200,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=FrameDataManagerConfig(train_num_rays_per_batch=1024),
            model=VvcGridModelConfig(),
        ),
        optimizers={
            "grid": {"optimizer": AdamOptimizerConfig(lr=3e-2, eps=1e-15), "scheduler": None},
            "mlp": {"optimizer": AdamOptimizerConfig(lr=3e-3, eps=1e-15), "scheduler": None},
        },
        viewer=ViewerConfig(num_rays_per_chunk=4096),
        vis="viewer",
        logging=LoggingConfig(local_writer=LocalWriterConfig(enable=False)),
    ),
    description="Per-frame feature grid + tiny MLP trained frame by frame (no compression).",
)
