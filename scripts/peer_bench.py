#!/usr/bin/env python3
"""The peers of `facegate bench`: the same stages, models and photo with onnxruntime (networks)
plus OpenCV (resize, alignment), once as onnxruntime runs by default and once without its x86
channel-blocked layout ("onnxruntime_nchw"), and OpenCV's own YuNet/SFace pipeline (cv2.FaceDetectorYN,
cv2.FaceRecognizerSF), each single-threaded and on all cores. Medians over repeated runs after
warm-up, in milliseconds, as JSON. Run by scripts/bench-peers inside its venv.

    peer_bench.py MODELS_DIR PHOTO ROUNDS OUT.json
"""
import json
import os
import resource
import sys
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort

MODELS, PHOTO, ROUNDS, OUT = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
WARMUP = 3
YUNET = os.path.join(MODELS, "face_detection_yunet_2023mar.onnx")
NETS = {
    "edgeface_fp32": "edgeface_s_gamma_05.onnx",
    "edgeface_int8": "edgeface_s_gamma_05.int8.onnx",
    "sface_fp32": "face_recognition_sface_2021dec.onnx",
    "sface_int8": "face_recognition_sface_2021dec.int8.onnx",
}
# ArcFace 112x112 template (the one facegate aligns to).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def median_ms(fn):
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def yunet_decode(outs, h, w, score_threshold=0.6, nms_iou=0.3):
    """YuNet 2023mar's outputs (by name) -> boxes, scores, landmarks, decoded as facegate and
    OpenCV do."""
    boxes, scores, marks = [], [], []
    for stride in (8, 16, 32):
        cls = outs[f"cls_{stride}"].reshape(-1)
        obj = outs[f"obj_{stride}"].reshape(-1)
        bbox = outs[f"bbox_{stride}"].reshape(-1, 4)
        kps = outs[f"kps_{stride}"].reshape(-1, 10)
        cols, rows = w // stride, h // stride
        n = rows * cols
        score = np.sqrt(np.clip(cls[:n], 0, 1) * np.clip(obj[:n], 0, 1))
        keep = np.nonzero(score > score_threshold)[0]
        r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
        b = bbox[keep]
        cx, cy = (c + b[:, 0]) * stride, (r + b[:, 1]) * stride
        bw, bh = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
        scores.append(score[keep])
        k = kps[keep].reshape(-1, 5, 2)
        marks.append(np.stack([(k[:, :, 0] + c[:, None]) * stride, (k[:, :, 1] + r[:, None]) * stride], axis=2))
    boxes, scores, marks = np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks)
    idx = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), score_threshold, nms_iou) if len(scores) else []
    idx = np.array(idx, dtype=int).reshape(-1)
    return boxes[idx], scores[idx], marks[idx]


def align(bgr, landmarks):
    m, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), TEMPLATE, method=cv2.LMEDS)
    return cv2.warpAffine(bgr, m, (112, 112), flags=cv2.INTER_LINEAR)


def dynamic_yunet():
    """YuNet's ONNX file declares a fixed 640x640 input (OpenCV and tract override it); for
    onnxruntime the same graph is saved with symbolic height and width."""
    model = onnx.load(YUNET)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if i >= 1 and (value in model.graph.output or i >= 2):
                d.ClearField("dim_value")
                d.dim_param = f"{value.name}_{i}"
    path = os.path.join(os.path.dirname(OUT) or ".", "yunet_dynamic.onnx")
    onnx.save(model, path)
    return path


def measure_onnxruntime(threads, photo, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    """`level` ORT_ENABLE_ALL is onnxruntime's default; ORT_ENABLE_EXTENDED is the same minus
    the hardware-specific layout rewrite (on x86, the NchwcTransformer: convolutions and pools
    in channel blocks of 8 or 16 for MLAS's AVX2/AVX-512 kernels), which is how facegate's
    tract runs them: plain channel-first tensors."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = level
    opts.log_severity_level = 3  # the declared 640x640 output sizes of YuNet are expected to differ
    cv2.setNumThreads(threads)
    sess = lambda f: ort.InferenceSession(os.path.join(MODELS, f), opts, providers=["CPUExecutionProvider"])
    yunet = ort.InferenceSession(dynamic_yunet(), opts, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in yunet.get_outputs()]
    t = {}

    def detect(frame):
        h, w = frame.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = frame.transpose(2, 0, 1)
        outs = yunet.run(None, {yunet.get_inputs()[0].name: blob})
        return yunet_decode(dict(zip(out_names, outs)), ph, pw)

    for w, h in ((320, 256), (640, 480)):
        # The resize is part of facegate's detect stage too (a camera frame larger than the
        # network input); here the frame is made at that size first, as in facegate bench.
        frame = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        t[f"yunet_{w}x{h}"] = median_ms(lambda: detect(frame))
    frame = cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)
    boxes, scores, marks = detect(frame)
    lm = marks[0]
    t["align"] = median_ms(lambda: align(frame, lm))
    crop = align(frame, lm)
    nets = {k: sess(f) for k, f in NETS.items()}

    def embed(name, crop_bgr):
        s = nets[name]
        if name.startswith("edgeface"):
            x = (cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        else:
            x = crop_bgr.astype(np.float32).transpose(2, 0, 1)[None]
        v = s.run(None, {s.get_inputs()[0].name: x})[0].reshape(-1)
        return v / np.linalg.norm(v)

    for name in NETS:
        t[name] = median_ms(lambda: embed(name, crop))
    rng = np.random.default_rng(0)
    galleries = {}
    for kind, dim in (("edgeface", 512), ("sface", 128)):
        g = rng.standard_normal((30, dim)).astype(np.float32)
        galleries[kind] = g / np.linalg.norm(g, axis=1, keepdims=True)

    def frame_to_decision(kind):
        _, _, m = detect(frame)
        if len(m) == 0:
            return None
        e = embed(f"{kind}_int8", align(frame, m[0]))
        s = galleries[kind] @ e
        return int(np.argmax(s)), float(s.max())

    t["frame_to_decision"] = median_ms(lambda: frame_to_decision("edgeface"))
    t["frame_to_decision_sface"] = median_ms(lambda: frame_to_decision("sface"))
    return t


def measure_opencv(threads, photo):
    cv2.setNumThreads(threads)
    t = {}
    for w, h in ((320, 256), (640, 480)):
        frame = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        det = cv2.FaceDetectorYN.create(YUNET, "", (w, h), 0.6, 0.3, 5000)
        t[f"yunet_{w}x{h}"] = median_ms(lambda: det.detect(frame))
    frame = cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)
    det = cv2.FaceDetectorYN.create(YUNET, "", (640, 480), 0.6, 0.3, 5000)
    _, faces = det.detect(frame)
    rec = cv2.FaceRecognizerSF.create(os.path.join(MODELS, NETS["sface_fp32"]), "")
    t["align"] = median_ms(lambda: rec.alignCrop(frame, faces[0]))
    crop = rec.alignCrop(frame, faces[0])
    t["sface_fp32"] = median_ms(lambda: rec.feature(crop))
    gallery = [rec.feature(crop) for _ in range(30)]

    def frame_to_decision():
        _, fs = det.detect(frame)
        if fs is None:
            return None
        f = rec.feature(rec.alignCrop(frame, fs[0]))
        return max(rec.match(f, g, cv2.FaceRecognizerSF_FR_COSINE) for g in gallery)

    t["frame_to_decision_sface"] = median_ms(frame_to_decision)
    return t


def main():
    photo = cv2.imread(PHOTO)
    if photo is None:
        sys.exit(f"cannot read {PHOTO}")
    cores = os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    report = {
        "cores": cores,
        "rounds": ROUNDS,
        "versions": {"onnxruntime": ort.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "onnxruntime": {"threads": {str(n): measure_onnxruntime(n, photo) for n in thread_counts}},
        "onnxruntime_nchw": {
            "threads": {
                str(n): measure_onnxruntime(n, photo, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
                for n in thread_counts
            }
        },
        "opencv": {"threads": {str(n): measure_opencv(n, photo) for n in thread_counts}},
    }
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open(OUT, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
