"""vvc-mv-inr method specifications: the paper-scale preset (GPU) and a CPU-feasible one.

RD knobs: `--pipeline.model.grid-channels` (c) with `--pipeline.model.qp` (paper pairs: (20, 43), (30, 38), (40, 33),
(60, 28), (80, 23)). Ablations: `--pipeline.model.grid-embedding False`, `--pipeline.model.compensation False`.
There is no ray training: `max_num_iterations` is 0 and the work happens in the stages (methods/mv_inr/stages.py).
"""

from __future__ import annotations

from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, ViewerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from nerfstudio_vvc.data.sequence_datamanager import SequenceDataManagerConfig
from nerfstudio_vvc.methods.mv_inr.model import MVInrModelConfig
from nerfstudio_vvc.methods.mv_inr.spec import RD_POINTS  # noqa: F401 - re-exported
from nerfstudio_vvc.training.device import preset_machine
from nerfstudio_vvc.training.sequence_trainer import SequenceTrainerConfig


def _config(name: str, model: MVInrModelConfig) -> SequenceTrainerConfig:
    return SequenceTrainerConfig(
        method_name=name,
        machine=preset_machine(name),
        max_num_iterations=0,
        steps_per_save=1,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(datamanager=SequenceDataManagerConfig(frames_per_batch=0), model=model),
        optimizers={},
        viewer=ViewerConfig(num_rays_per_chunk=1 << 16),
        vis="viewer",
        logging=LoggingConfig(local_writer=LocalWriterConfig(enable=False)),
    )


vvc_mv_inr = MethodSpecification(
    config=_config("vvc-mv-inr", MVInrModelConfig(epochs=300, finetune_epochs=30, qat_epochs=30)),
    description="Implicit-explicit multi-view video codec, paper scale (GPU): one view in HEVC, the others by a grid + "
                "conv INR with inter-view compensation; 300 epochs, prune 60 %, fine-tune, QAT, entropy coding.",
)

vvc_mv_inr_cpu = MethodSpecification(
    config=_config(
        "vvc-mv-inr-cpu",
        MVInrModelConfig(
            conv_channels=(48, 32, 24, 16, 16),
            epochs=150,
            finetune_epochs=15,
            qat_epochs=15,
            lr=2e-3,
            finetune_lr=5e-4,
            batch_size=2,
        ),
    ),
    description="Implicit-explicit multi-view video codec, CPU preset (conv channels 48-32-24-16-16, "
    "150 + 15 + 15 epochs, "
    "lr 2e-3, 2 images per step).",
)
