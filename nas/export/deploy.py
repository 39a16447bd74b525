"""The deploy forms of an export, beside ``model.py``: mobile formats and the YOLO plugin.

    deploy = Deploy(formats=("ncnn",), yolo=True)
    check_deploy(arch, form, deploy)                    # before anything is written
    write_deploy("mynet", arch, form, inputs, deploy)   # after export_arch / export_network
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

from ..arch import Architecture
from ..files import shell_path
from .mobile import DEFAULT_TIMEOUT, Converted, check_formats, convert_export
from .source import ExportForm
from .yolo import write_yolo, yolo_levels

__all__ = ["Deploy", "check_deploy", "write_deploy", "deploy_lines"]


@dataclass(frozen=True)
class Deploy:
    """What to write beside the export (``nas export --format ... --yolo``).

    Attributes:
        formats: mobile formats (:data:`nas.export.mobile.FORMATS`), each converted in a
            process of its own and checked against torch where its runtime runs here.
        timeout: seconds each converter may run.
        yolo: the backbone as an ultralytics plugin and a detector YAML (implies a backbone).
    """

    formats: Tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    yolo: bool = False

    def form(self, form: ExportForm) -> ExportForm:
        """``form`` as written with these deploy forms (``yolo`` makes it a backbone)."""
        return replace(form, backbone=True) if self.yolo else form


def check_deploy(arch: Architecture, form: ExportForm, deploy: Deploy) -> None:
    """Refuse, before anything is written, what :func:`write_deploy` could not do.

    Raises:
        ExportError: an unknown or uninstalled format (naming its ``pip install``), a
            timeout that is not positive, or levels a YOLO neck cannot read.
    """
    from ..errors import ExportError

    check_formats(deploy.formats)
    if not deploy.timeout > 0:
        raise ExportError(f"--convert-timeout must be positive, got {deploy.timeout:g}")
    if deploy.yolo:
        yolo_levels(arch, deploy.form(form))


def write_deploy(out_dir, arch: Architecture, form: ExportForm,
                 inputs: Sequence[torch.Tensor],
                 deploy: Deploy) -> Tuple[List[Path], Dict[str, Converted]]:
    """Write the deploy forms into the export ``out_dir`` (``model.py`` already there).

    Args:
        out_dir: the export directory.
        arch: the architecture written there.
        form: the form it was written in.
        inputs: batch-1 images for the conversions (traced at their size, and compared).
        deploy: what to write.

    Returns:
        The paths written, and each format's :class:`~nas.export.mobile.Converted`.
    """
    paths: List[Path] = []
    if deploy.yolo:
        paths += write_yolo(arch, out_dir, deploy.form(form))
    converted = convert_export(out_dir, deploy.formats, inputs, deploy.timeout) \
        if deploy.formats else {}
    for c in converted.values():
        paths += list(c.paths)
    return paths, converted


def deploy_lines(paths: Sequence[Path], converted: Dict[str, Converted], yolo: bool,
                 fresh: bool) -> List[str]:
    """What ``nas export`` prints about the deploy forms: each conversion and its check
    (``fresh``: the network holds fresh weights), and how to train the YOLO plugin."""
    lines = []
    for c in converted.values():
        check = (f"max |Δ| vs torch {c.delta:.2e} in {c.runtime}" if c.delta is not None
                 else "converted only (Core ML predicts on macOS only)")
        lines.append(f"{c.format}: converted in {c.seconds:.1f} s, {check}"
                     + (" (fresh weights, seed 0: for timing and checking, not predictions)"
                        if fresh else ""))
    if yolo:
        plugin = next(p for p in paths if p.name.startswith("nas_yolo_"))
        lines.append(f"YOLO: train it with: cd {shell_path(plugin.parent)} && python "
                     f"{plugin.name} train data=coco8.yaml epochs=100 imgsz=640")
    return lines
