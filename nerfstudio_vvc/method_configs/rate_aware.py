"""vvc-rate-aware method specifications: the paper-scale preset (GPU) and a CPU-feasible one.

RD points: the paper's λ ∈ {7e-4, 1e-3, 2e-3, 5e-3} (`RD_LAMBDAS`); pick one with
`--pipeline.model.lambda-rate`. Ablations: `--gop-size 1` (w/o dynamic modeling),
`--pipeline.model.adaptive-quant False` (w/o adaptive quantization), and the Baseline
`--gop-size 1 --pipeline.model.rate-aware False` (see `ABLATIONS`).
"""

from __future__ import annotations

from typing import Dict, List

from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from nerfstudio_vvc.data.datamanager import FrameDataManagerConfig
from nerfstudio_vvc.methods.rate_aware.model import RateAwareModelConfig
from nerfstudio_vvc.methods.rate_aware.spec import RD_LAMBDAS  # noqa: F401 - re-exported
from nerfstudio_vvc.training.device import preset_machine
from nerfstudio_vvc.training.trainer import FrameSequentialTrainerConfig

ABLATIONS: Dict[str, List[str]] = {
    "full": [],
    "wo-dynamic": ["--gop-size", "1"],
    "wo-adaptive": ["--pipeline.model.adaptive-quant", "False"],
    "baseline": ["--gop-size", "1", "--pipeline.model.rate-aware", "False"],
}
"""ns-train arguments of the paper's ablations and Baseline."""


def _optimizers(grid_lr: float, mlp_lr: float) -> dict:
    adam = lambda lr: {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": None}  # noqa: E731
    return {"grids": adam(grid_lr), "mlp": adam(mlp_lr), "entropy": adam(1e-2), "quant": adam(1e-2)}


def _config(name: str, model: RateAwareModelConfig, rays: int, i_iters: int, p_iters: int, grid_lr: float,
            mlp_lr: float, lr_final_factor: float):
    return FrameSequentialTrainerConfig(
        method_name=name,
        machine=preset_machine(name),
        gop_size=20,
        iframe_iterations=i_iters,
        pframe_iterations=p_iters,
        lr_final_factor=lr_final_factor,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=FrameDataManagerConfig(train_num_rays_per_batch=rays),
            model=model,
        ),
        optimizers=_optimizers(grid_lr, mlp_lr),
        viewer=ViewerConfig(num_rays_per_chunk=4096),
        vis="viewer",
        logging=LoggingConfig(local_writer=LocalWriterConfig(enable=False)),
    )


vvc_rate_aware = MethodSpecification(
    config=_config(
        "vvc-rate-aware",
        RateAwareModelConfig(num_samples=128, occupancy_resolution=128),
        rays=4096, i_iters=20000, p_iters=5000, grid_lr=2e-2, mlp_lr=3e-3, lr_final_factor=0.1,
    ),
    description="Rate-aware DiF volumetric video codec, paper scale (GPU: grids 32–128³, 4096 rays).",
)

vvc_rate_aware_cpu = MethodSpecification(
    config=_config(
        "vvc-rate-aware-cpu",
        RateAwareModelConfig(
            basis_resolutions=(12, 16, 20, 24, 28, 32), coeff_resolution=16, hidden_dim=32,
            num_samples=96, occupancy_resolution=48, occupancy_update_every=16, occupancy_warmup=24,
            posthoc_entropy_steps=25, rate_every=8,
        ),
        rays=1024, i_iters=600, p_iters=150, grid_lr=6e-2, mlp_lr=1e-2, lr_final_factor=1.0,
    ),
    description="Rate-aware DiF codec, CPU preset (basis grids 12–32³, coefficient grid 16³, 96 samples, 1024 rays, "
                "600/150 iters, constant lr).",
)
