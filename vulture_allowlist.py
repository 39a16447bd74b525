"""Names vulture (`make lint`) reports as unused though something reaches them by name.

vulture parses this file beside nas/ and never runs it: an attribute read here counts as a
use. Each entry says who reaches the name. A name another module lists in its ``__all__``
(a package face, a lazy face's submodule) is already a use to vulture and needs no entry.
Remove an entry when its name goes; add one only with its reason.
"""

# ruff: noqa: B018  (a bare attribute read is the whole point of each entry)

from types import SimpleNamespace

_ = SimpleNamespace()

# torch.nn.Module.__repr__ calls it (nas/ops, nas/supernet: DESIGN.md §4.4)
_.extra_repr

# public API (DESIGN.md §1: "Architecture (frozen, canonical string, JSON)"); tests round-trip it
_.to_json
_.from_json

# public: which of the data paths a dataset took (in RAM or streamed); the data tests check it
_.in_memory

# onnxruntime.SessionOptions attributes, set by nas/latency/runtime.py and runner.py, read by
# onnxruntime when the session is built
_.intra_op_num_threads
_.inter_op_num_threads
_.execution_mode
_.log_severity_level

# ncnn.Net().opt attributes, set by nas/export/convert.py, read by ncnn when it loads a model
_.use_fp16_storage
_.use_fp16_arithmetic
_.use_fp16_packed

# onnxruntime.quantization.CalibrationDataReader's method, called by quantize_static
# (nas/latency/quantize.py's reader of calibration samples)
_.get_next

# fields of typed results that only their summary.json holds (written by to_dict, through
# dataclasses.asdict or getattr): nas diagnose's Diagnosis, nas reference's ReferenceSummary
_.validation_images
_.supernet_step
_.recipe_steps
_.split_half_tau
_.reliability_r
