"""Time a nas latency pack on the device it is copied to (``run_latency.py`` of the pack).

    python run_latency.py                 # in the pack's folder; writes timings.json
    python run_latency.py --threads 4     # the runtime's intra-op threads (default 1)

Needs Python 3.8 or later and the pack's runtime (``pip install onnxruntime`` or ``pip
install ncnn``), nothing else: no nas, no torch. It reads ``manifest.json``, times every
unit (stem, block, tail of the space's networks) and the whole calibration networks at
batch 1, and writes ``timings.json``; bring that back and run ``nas latency read PACK -o
LUT.json`` where nas is installed. A killed run continues when started again
(``timings.json.partial``).

The protocol is nas's own (``nas/latency/runtime.py``): the units of one file run
round-robin, so a unit never follows itself, ``--warmup`` untimed rounds then
``--repeats`` timed ones, the fastest kept; with one thread the clock is the thread's CPU
time (what other processes take from the core is not counted), with more, wall time.
A calibration network is timed between files, spread over the run, so that the fitted
scale sees the device in the same states as the units.
"""

import argparse
import json
import os
import platform
import sys
import time

FORMAT = "nas-device-timings/1"
PACK_FORMAT = "nas-device-pack/1"


def _onnxruntime(threads):
    import numpy as np
    import onnxruntime as ort

    def load(path, inputs, outputs, shape):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = {inputs: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        return lambda: session.run([outputs], feed)

    return load, "onnxruntime " + ort.__version__


def _ncnn(threads):
    import ncnn

    nets = {}

    def load(path, inputs, outputs, shape):
        if path not in nets:  # one Net per file: its units share the loaded weights
            net = ncnn.Net()
            net.opt.num_threads = threads
            net.load_param(path + ".param")
            net.load_model(path + ".bin")
            nets[path] = net
        net = nets[path]
        mat = ncnn.Mat(shape[3], shape[2], shape[1])
        mat.fill(0.5)

        def call():
            # a fresh extractor per run: ncnn keeps what an extractor computed, and it
            # computes only what the requested output needs (this unit of the file)
            ex = net.create_extractor()
            ex.input(inputs, mat)
            return ex.extract(outputs)

        return call

    return load, "ncnn " + getattr(ncnn, "__version__", "?")


RUNTIMES = {"onnxruntime": _onnxruntime, "ncnn": _ncnn}


def time_calls(calls, warmup, repeats, threads):
    """Milliseconds of each call: the fastest of ``repeats`` round-robin rounds."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    best = [float("inf")] * len(calls)
    for _ in range(warmup):
        for call in calls:
            call()
    for _ in range(repeats):
        for i, call in enumerate(calls):
            start = clock()
            call()
            best[i] = min(best[i], clock() - start)
    return [t * 1000 for t in best]


def _write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", default=here, help="the pack's folder (default: this file's)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    p.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    p.add_argument("-o", "--output", help="timings file (default PACK/timings.json)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        p.error("--threads and --repeats must be at least 1, --warmup at least 0")
    with open(os.path.join(args.pack, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != PACK_FORMAT or manifest.get("runtime") not in RUNTIMES:
        p.error("manifest.json is not a nas latency pack this runner knows")
    load, version = RUNTIMES[manifest["runtime"]](args.threads)
    out = args.output or os.path.join(args.pack, "timings.json")
    settings = {"threads": args.threads, "warmup": args.warmup, "repeats": args.repeats}
    result = {"format": FORMAT, "runtime": manifest["runtime"], "version": version,
              "pack": manifest["id"], **settings,
              "device": {"machine": platform.machine(), "system": platform.system(),
                         "release": platform.release(), "processor": platform.processor(),
                         "python": platform.python_version(), "cpus": os.cpu_count()},
              "units": {}, "networks": {}}
    partial = out + ".partial"
    if os.path.exists(partial):  # continue a killed run with the same settings
        with open(partial) as f:
            done = json.load(f)
        if done.get("pack") == manifest["id"] and all(done.get(k) == v
                                                       for k, v in settings.items()):
            result["units"], result["networks"] = done["units"], done["networks"]
    files = {}  # the units timed round-robin together: one exported bundle's
    for unit in manifest["units"]:
        files.setdefault(unit["group"], []).append(unit)
    networks = [n for n in manifest["networks"] if n["arch"] not in result["networks"]]
    todo = [f for f in files if any(u["key"] not in result["units"] for u in files[f])]
    # after which file each calibration network is timed: evenly spread over the run
    due = [max(1, round((j + 1) * len(todo) / (len(networks) + 1)))
           for j in range(len(networks))]

    def time_network(n):
        call = load(os.path.join(args.pack, n["file"]), n["input"], n["output"], n["shape"])
        result["networks"][n["arch"]] = time_calls([call], args.warmup, args.repeats,
                                                   args.threads)[0]

    started = shown = time.monotonic()
    for done_files, name in enumerate(todo, 1):
        units = files[name]
        calls = [load(os.path.join(args.pack, u["file"]), u["input"], u["output"], u["shape"])
                 for u in units]
        for unit, ms in zip(units, time_calls(calls, args.warmup, args.repeats,
                                              args.threads)):
            result["units"][unit["key"]] = ms
        while networks and due[0] <= done_files:
            due.pop(0)
            time_network(networks.pop(0))
        _write(partial, result)
        if time.monotonic() - shown > 10 or done_files == len(todo):
            shown = time.monotonic()
            print(f"{done_files}/{len(todo)} groups of units, {shown - started:.0f} s",
                  file=sys.stderr, flush=True)
    for n in networks:
        time_network(n)
    _write(out, result)
    if os.path.exists(partial):
        os.remove(partial)
    print(f"{len(result['units'])} units and {len(result['networks'])} networks timed "
          f"in {version}: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
