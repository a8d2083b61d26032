"""vvc-codebook method specifications: the paper-scale preset (GPU) and a CPU-feasible one.

RD knobs: `--pipeline.model.codebook-size` (k), `--pipeline.model.codebook-bits`,
`--pipeline.model.dynamic-density-codes` / `--pipeline.model.dynamic-appearance-codes` (per fragment).
Ablations (paper Table 3) come out of every run: `planes_float32.bin` (uncompressed planes + MLP),
`sequence-nodyn.vvc` (without dynamic codes), `sequence.vvc` (with).
"""

from __future__ import annotations

from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from nerfstudio_vvc.data.sequence_datamanager import SequenceDataManagerConfig
from nerfstudio_vvc.methods.codebook.model import CodebookModelConfig
from nerfstudio_vvc.methods.codebook.spec import RD_CODEBOOK_SIZES  # noqa: F401 - re-exported
from nerfstudio_vvc.training.device import preset_machine
from nerfstudio_vvc.training.sequence_trainer import SequenceTrainerConfig


def _config(name: str, model: CodebookModelConfig, rays: int, iters: int, plane_lr: float, mlp_lr: float,
            frames_per_batch: int) -> SequenceTrainerConfig:
    adam = lambda lr: {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": None}  # noqa: E731
    return SequenceTrainerConfig(
        method_name=name,
        machine=preset_machine(name),
        max_num_iterations=iters,
        steps_per_save=max(iters // 10, 50),
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=SequenceDataManagerConfig(train_num_rays_per_batch=rays, frames_per_batch=frames_per_batch),
            model=model,
        ),
        optimizers={"planes": adam(plane_lr), "mlp": adam(mlp_lr)},
        viewer=ViewerConfig(num_rays_per_chunk=4096),
        vis="viewer",
        logging=LoggingConfig(local_writer=LocalWriterConfig(enable=False)),
    )


vvc_codebook = MethodSpecification(
    config=_config(
        "vvc-codebook",
        CodebookModelConfig(density_resolution=256, appearance_resolutions=(128, 256), time_resolution=100,
                            num_samples=128, occupancy_resolution=128, codebook_size=4096, kmeans_iters=100,
                            finetune_iterations=2000, fragment_size=100, dynamic_density_codes=5000,
                            dynamic_appearance_codes=1000, dynamic_accum_iterations=100, dynamic_iterations=1000,
                            importance_batches=256),
        rays=4096, iters=30000, plane_lr=3e-2, mlp_lr=2e-3, frames_per_batch=16,
    ),
    description="Dynamic-codebook HexPlane volumetric video, paper scale (GPU: planes 256² × 100, k 4096, 4096 rays).",
)

vvc_codebook_cpu = MethodSpecification(
    config=_config(
        "vvc-codebook-cpu",
        CodebookModelConfig(density_resolution=48, appearance_resolutions=(24, 48), time_resolution=16,
                            density_dim=16, appearance_dim=24, hidden_dim=32, num_samples=64,
                            occupancy_resolution=48, occupancy_warmup=32, codebook_size=1024, kmeans_iters=30,
                            finetune_iterations=150, fragment_size=10, dynamic_density_codes=64,
                            dynamic_appearance_codes=32, dynamic_accum_iterations=8, dynamic_iterations=40,
                            importance_batches=16),
        rays=1024, iters=1500, plane_lr=3e-2, mlp_lr=5e-3, frames_per_batch=4,
    ),
    description="Dynamic-codebook HexPlane, CPU preset (planes 48² / 24²+48² × 16 t, 24 appearance channels, "
                "64 samples, 1024 rays from 4 frames, 1500 iterations, k 1024, fragments of 10 frames).",
)
