"""Eye tracking: faces, head pose and gaze, eye contact with the camera, blinks.

The model is mediapipe's face mesh with attention (``refine_landmarks=True``): 478 landmarks
per face, the two irises included (468-472 and 473-477). Its weights are bundled in the
mediapipe wheel, so every weights mode runs them and the report says ``real`` (see
``weights_manifest/eye_tracking.toml``). The graph runs in video mode: after the first
detection it tracks each face from the previous frame's landmarks, so each clip's frames go
through it in order after a :meth:`reset <mediapipe.python.solution_base.SolutionBase.reset>`
(one analyzer instance serves clip after clip).

Per face and frame:

* head pose: the rigid rotation that best maps nine points of mediapipe's canonical face
  model (eye corners, mouth corners, nose tip, upper lip, chin; the coordinates of
  ``canonical_face_model.obj``) onto the same landmarks as seen (x and y in pixels, z the
  mesh's relative depth on x's scale), by orthogonal Procrustes (Kabsch). The face's
  forward axis, rotated, gives ``head_yaw`` (positive: the face turns towards the image's
  right) and ``head_pitch`` (positive: up). Mirroring the picture flips the yaw's sign;
* eyes in the head: each iris centre's offset from the midpoint of its eye's two corners,
  along the corner line (horizontal) and across it (vertical), in units of half the eye's
  width, less the iris's rest offset towards the temporal corner (``iris_rest``: the inner
  corner's caruncle pulls the corners' midpoint nasally; 0.075 read on the astronaut
  portrait, who looks into the lens). The eyes are averaged weighted by their apparent
  width squared (in a three-quarter view the far eye is foreshortened), an eye whose iris
  falls outside it is left out. An offset ``h`` becomes an angle ``asin(h * eye_gain)``:
  the iris centre sits on a sphere about 12 mm in radius behind an opening about 30 mm
  wide (``eye_gain`` = 15/12), at most ``max_eye_deg``. Known limit: beyond about 30
  degrees of head yaw the mesh places the irises poorly and this part is noise;
* gaze = head pose + eyes in the head (small-angle sum), ``yaw`` and ``pitch`` in degrees;
  eye contact when the gaze lies within ``contact_cone_deg`` of the camera's direction.
  Known limit: the angles are the mesh's, under weak perspective, so a face near the
  frame's edge looking into the lens can read a few degrees off-axis;
* blinks: the eye aspect ratio (EAR, Soukupova and Cech 2016: the two eyelid gaps over the
  corner distance, six landmarks per eye, both eyes averaged) against the face's own open
  level (a high percentile of its EAR), with hysteresis: closed below
  ``blink_close_ratio`` of it, open again above ``blink_open_ratio``; a closure longer
  than ``blink_max_s`` is eyes shut, not a blink. At 10 frames per second a blink (100 to
  400 ms) spans one to four frames; the shortest may fall between two frames.

Faces are followed across frames by IoU (:class:`._faces.FaceTracker`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._faces import Box, FaceTracker, clip_box, rgb_frame
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer
from tiktok_analyzer.analyzers._tracking import Track
from tiktok_analyzer.analyzers.base import Clip, FrameSpec
from tiktok_analyzer.analyzers.results.eyes import (  # noqa: F401 - re-exported
    Blink,
    EyeTrackingResult,
    FacePresence,
    GazeSample,
)

__all__ = [
    "Blink",
    "EyeTracking",
    "FaceGeometry",
    "FacePresence",
    "GazeSample",
    "find_blinks",
    "face_geometry",
]

log = logging.getLogger(__name__)

# Landmarks of mediapipe's face mesh. "Right" is the subject's right eye: the one on the
# image's left in a frontal view. Iris 468 belongs to it, iris 473 to the left eye.
_RIGHT_CORNERS = (33, 133)  # image-left corner, image-right corner
_LEFT_CORNERS = (362, 263)
_RIGHT_IRIS, _LEFT_IRIS = 468, 473
# Eye aspect ratio points p1..p6 (corner, upper lid x2, corner, lower lid x2).
_RIGHT_EAR = (33, 160, 158, 133, 153, 144)
_LEFT_EAR = (362, 385, 387, 263, 373, 380)
_N_LANDMARKS = 478

# mediapipe's canonical face model (canonical_face_model.obj, x right of the viewer,
# y up, z towards the viewer) at the landmarks the head pose is fitted on.
_POSE_INDEX = (33, 133, 362, 263, 61, 291, 1, 0, 152)
_CANONICAL = np.array(
    [
        [-4.445859, 2.663991, 3.173422],
        [-1.856432, 2.585245, 3.757904],
        [1.856432, 2.585245, 3.757904],
        [4.445859, 2.663991, 3.173422],
        [-2.456206, -4.342621, 4.283884],
        [2.456206, -4.342621, 4.283884],
        [0.000000, -1.126865, 7.475604],
        [0.000000, -3.406404, 5.979507],
        [0.000000, -9.403378, 4.264492],
    ]
)
_CANONICAL_CENTRED = _CANONICAL - _CANONICAL.mean(axis=0)


@dataclass(frozen=True)
class FaceGeometry:
    """What one face's landmarks say in one frame (angles in degrees)."""

    box: Box
    head_yaw: float
    head_pitch: float
    eye_yaw: float
    eye_pitch: float
    ear: float
    irises_in_eyes: bool
    #: the right and left iris centres, normalised [x, y]
    iris: tuple[tuple[float, float], tuple[float, float]]

    @property
    def yaw(self) -> float:
        return self.head_yaw + self.eye_yaw

    @property
    def pitch(self) -> float:
        return self.head_pitch + self.eye_pitch


def _head_pose(px: np.ndarray) -> tuple[float, float]:
    """Head yaw and pitch in degrees from the landmarks in pixels: Kabsch on the canonical
    points, in a right-handed frame (x right, y up, z towards the camera) like the
    canonical model's."""
    seen = px[list(_POSE_INDEX)] * np.array([1.0, -1.0, -1.0])
    seen = seen - seen.mean(axis=0)
    u, _, vt = np.linalg.svd(_CANONICAL_CENTRED.T @ seen)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    forward = rotation @ np.array([0.0, 0.0, 1.0])
    yaw = float(np.degrees(np.arctan2(forward[0], forward[2])))
    pitch = float(np.degrees(np.arctan2(forward[1], np.hypot(forward[0], forward[2]))))
    return yaw, pitch


def face_geometry(
    landmarks: np.ndarray,
    width: int,
    height: int,
    eye_gain: float = 1.25,
    iris_rest: float = 0.075,
    max_eye_deg: float = 40.0,
) -> FaceGeometry:
    """Head pose, eyes in the head, eye aspect ratio and box of one face.

    ``landmarks`` is mediapipe's (478, 3) array: x and y normalised to the frame, z the
    relative depth on x's scale (smaller is nearer the camera)."""
    if landmarks.shape != (_N_LANDMARKS, 3):
        raise ValueError(f"expected ({_N_LANDMARKS}, 3) landmarks, got {landmarks.shape}")
    px = landmarks * np.array([width, height, width], dtype=np.float64)
    head_yaw, head_pitch = _head_pose(px)

    xy = px[:, :2]
    # Per eye: the iris offset along and across the corner line, in half eye-widths, less
    # the iris's rest offset towards the temporal corner (the inner corner's caruncle pulls
    # the corners' midpoint nasally); temporal is image-left for the right eye.
    eyes = []
    for (a, b), iris, temporal in (
        (_RIGHT_CORNERS, _RIGHT_IRIS, -1.0),
        (_LEFT_CORNERS, _LEFT_IRIS, 1.0),
    ):
        axis = xy[b] - xy[a]
        half = float(np.linalg.norm(axis)) / 2
        if half < 1e-6:
            continue
        axis = axis / (2 * half)
        down = np.array([-axis[1], axis[0]])  # the corner line turned 90 degrees: image-down
        rel = xy[iris] - (xy[a] + xy[b]) / 2
        h, v = float(rel @ axis) / half, float(rel @ down) / half
        # The iris centre lies between the corners and near the corner line: otherwise
        # the mesh lost this eye (turned away, occluded).
        if abs(h) < 1.0 and abs(v) < 0.5:
            eyes.append((h - temporal * iris_rest, v, half))
    inside = len(eyes) == 2
    if eyes:
        # The wider eye is the nearer and better seen one: in a three-quarter view the far
        # eye is foreshortened and its ratio unreliable.
        w = np.array([e[2] for e in eyes]) ** 2
        h = float(np.average([e[0] for e in eyes], weights=w))
        v = float(np.average([e[1] for e in eyes], weights=w))
    else:
        h = v = 0.0  # no usable eye: the gaze is the head's
    limit = np.sin(np.radians(max_eye_deg))
    eye_yaw = float(np.degrees(np.arcsin(np.clip(h * eye_gain, -limit, limit))))
    eye_pitch = float(-np.degrees(np.arcsin(np.clip(v * eye_gain, -limit, limit))))

    ears = []
    for p1, p2, p3, p4, p5, p6 in (_RIGHT_EAR, _LEFT_EAR):
        span = float(np.linalg.norm(xy[p1] - xy[p4]))
        gaps = float(np.linalg.norm(xy[p2] - xy[p6]) + np.linalg.norm(xy[p3] - xy[p5]))
        ears.append(gaps / (2 * span) if span > 1e-6 else 0.0)

    lo, hi = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    return FaceGeometry(
        box=clip_box((lo[0], lo[1], hi[0], hi[1])),
        head_yaw=head_yaw,
        head_pitch=head_pitch,
        eye_yaw=eye_yaw,
        eye_pitch=eye_pitch,
        ear=float(np.mean(ears)),
        irises_in_eyes=inside,
        iris=(
            (float(landmarks[_RIGHT_IRIS, 0]), float(landmarks[_RIGHT_IRIS, 1])),
            (float(landmarks[_LEFT_IRIS, 0]), float(landmarks[_LEFT_IRIS, 1])),
        ),
    )


def find_blinks(
    times: np.ndarray,
    ear: np.ndarray,
    close_ratio: float,
    open_ratio: float,
    max_blink_s: float,
    max_gap_s: float,
    open_percentile: float = 80.0,
) -> list[tuple[float, float]]:
    """Blinks in one face's eye-aspect-ratio series: (time of the lowest EAR, duration).

    The open level is the series' ``open_percentile`` (a face blinks a small share of the
    time); a blink starts at the first frame below ``close_ratio`` of it and ends at the
    first frame above ``open_ratio`` (hysteresis: a noisy EAR near one threshold does not
    count twice). Its duration runs from its first closed frame to the first open one.
    Closures longer than ``max_blink_s``, or cut by a gap in the track longer than
    ``max_gap_s`` or by the track's end, are not blinks."""
    if len(ear) < 3:
        return []
    level = float(np.percentile(ear, open_percentile))
    if level <= 0:
        return []
    close, reopen = close_ratio * level, open_ratio * level
    blinks: list[tuple[float, float]] = []
    start: int | None = None
    for i in range(len(ear)):
        if i and times[i] - times[i - 1] > max_gap_s:
            start = None  # the face was lost: whatever closure was open is unknown
        if start is None:
            if ear[i] < close:
                start = i
        elif ear[i] > reopen:
            duration = float(times[i] - times[start])
            if duration <= max_blink_s:
                low = start + int(np.argmin(ear[start:i]))
                blinks.append((float(times[low]), duration))
            start = None
    return blinks


def _box_list(box: Box) -> list[float]:
    return [round(float(v), 4) for v in box]


class EyeTracking(LearnedAnalyzer):
    """Faces, where they look, eye contact with the camera, and blinks."""

    name = "eye_tracking"
    frames = FrameSpec(short_side=480, fps=10.0)
    # 1.5 s a clip on the H100 host: eight in flight queued 15 s on one instance
    # (bench/results/gpu_h100.md, tenth session).
    gpu_host_instances = 3
    model_name = "mediapipe-face-mesh"
    # mediapipe's Python graphs run on the CPU (TFLite with XNNPACK): a KIND_GPU instance
    # would hold a GPU slot and never use it.
    gpu = False

    @dataclass
    class Params:
        max_num_faces: int = 4
        min_detection_confidence: float = 0.5
        min_tracking_confidence: float = 0.5
        # Gaze within this angle of the camera's direction is eye contact.
        contact_cone_deg: float = 15.0
        # Iris offset (in half eye-widths) to the sine of the eye's rotation: the eye's
        # half-opening (~15 mm) over the eyeball's radius (~12 mm).
        eye_gain: float = 1.25
        # The iris centre's rest offset towards the temporal corner, in half eye-widths
        # (measured on a frontal portrait looking into the lens, both eyes alike).
        iris_rest: float = 0.075
        # Eyes rarely turn further in the head; beyond it the ratio is noise.
        max_eye_deg: float = 40.0
        # Blink hysteresis, as shares of the face's open eye aspect ratio.
        blink_close_ratio: float = 0.65
        blink_open_ratio: float = 0.8
        blink_max_s: float = 0.7
        # Face tracking: IoU to continue a track; a face unseen longer ends its track.
        track_iou: float = 0.3
        max_gap_s: float = 0.5

    Result = EyeTrackingResult

    def load(self, weights: weights_layer.Weights) -> None:
        # Bundled weights: the manifest's files were checked against the installed wheel
        # (weights.resolve assembled them); mediapipe's graph loads the same files itself.
        import mediapipe as mp

        p = self.params
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=p.max_num_faces,
            refine_landmarks=True,
            min_detection_confidence=p.min_detection_confidence,
            min_tracking_confidence=p.min_tracking_confidence,
        )

    def analyze(self, clip: Clip) -> Result:
        p = self.params
        frames = clip.frames
        times = np.asarray(clip.timestamps_s, dtype=np.float64)
        n, height, width = len(frames), frames.shape[1], frames.shape[2]
        tracker = FaceTracker(min_iou=p.track_iou, max_gap_s=p.max_gap_s)
        faces_per_frame = np.zeros(n, dtype=int)
        contact_frames = np.zeros(n, dtype=bool)
        gaze: list[GazeSample] = []
        # Video mode carries the last clip's faces over: start each clip afresh.
        self._mesh.reset()
        for i in range(n):
            found = self._mesh.process(rgb_frame(frames[i])).multi_face_landmarks or []
            geos = []
            for face in found:
                lm = np.array([(q.x, q.y, q.z) for q in face.landmark], dtype=np.float64)
                if lm.shape[0] == _N_LANDMARKS:
                    geos.append(
                        face_geometry(lm, width, height, p.eye_gain, p.iris_rest, p.max_eye_deg)
                    )
            faces_per_frame[i] = len(geos)
            ids = tracker.update(i, times[i], [g.box for g in geos], geos)
            for tid, g in zip(ids, geos, strict=True):
                contact = bool(np.hypot(g.yaw, g.pitch) <= p.contact_cone_deg)
                contact_frames[i] |= contact
                gaze.append(
                    GazeSample(
                        time_s=round(float(times[i]), 3),
                        track_id=tid,
                        yaw=round(g.yaw, 2),
                        pitch=round(g.pitch, 2),
                        head_yaw=round(g.head_yaw, 2),
                        head_pitch=round(g.head_pitch, 2),
                        eye_contact=contact,
                    )
                )
        blinks: list[Blink] = []
        faces = []
        for track in tracker.tracks:
            found_blinks = self._blinks(track)
            blinks += found_blinks
            faces.append(self._presence(track, len(found_blinks)))
        blinks.sort(key=lambda b: b.time_s)
        with_face = faces_per_frame > 0
        face_minutes = self._face_seconds(times, with_face) / 60.0
        return self.Result(
            faces_max=int(faces_per_frame.max(initial=0)),
            first_face_s=round(float(times[with_face][0]), 3) if with_face.any() else None,
            face_share=round(float(with_face.mean()), 4) if n else 0.0,
            eye_contact_share=round(float(contact_frames.mean()), 4) if n else 0.0,
            eye_contact_share_of_face_time=(
                round(float(contact_frames[with_face].mean()), 4) if with_face.any() else 0.0
            ),
            gaze=gaze,
            blinks=blinks,
            blink_count=len(blinks),
            blinks_per_minute=round(len(blinks) / face_minutes, 2) if face_minutes > 0 else 0.0,
            faces=faces,
        )

    def _blinks(self, track: Track) -> list[Blink]:
        p = self.params
        ear = np.array([g.ear for g in track.items])  # type: ignore[attr-defined]
        found = find_blinks(
            np.asarray(track.times),
            ear,
            p.blink_close_ratio,
            p.blink_open_ratio,
            p.blink_max_s,
            p.max_gap_s,
        )
        return [
            Blink(time_s=round(t, 3), duration_s=round(d, 3), track_id=track.track_id)
            for t, d in found
        ]

    def _presence(self, track: Track, blink_count: int) -> FacePresence:
        p = self.params
        geos: list[FaceGeometry] = track.items  # type: ignore[assignment]
        contact = [np.hypot(g.yaw, g.pitch) <= p.contact_cone_deg for g in geos]
        return FacePresence(
            track_id=track.track_id,
            first_s=round(track.first_s, 3),
            last_s=round(track.last_s, 3),
            frames=len(geos),
            bbox=_box_list(track.median_box()),
            bbox_first=_box_list(track.boxes[0]),
            bbox_last=_box_list(track.boxes[-1]),
            irises_share=round(float(np.mean([g.irises_in_eyes for g in geos])), 4),
            eye_contact_share=round(float(np.mean(contact)), 4),
            mean_yaw=round(float(np.mean([g.yaw for g in geos])), 2),
            mean_pitch=round(float(np.mean([g.pitch for g in geos])), 2),
            blink_count=blink_count,
            iris_right=self._median_point([g.iris[0] for g in geos]),
            iris_left=self._median_point([g.iris[1] for g in geos]),
        )

    @staticmethod
    def _median_point(points: list[tuple[float, float]]) -> list[float]:
        return [round(float(v), 4) for v in np.median(np.asarray(points), axis=0)]

    @staticmethod
    def _face_seconds(times: np.ndarray, with_face: np.ndarray) -> float:
        """Seconds with a face: each analysed frame stands for the time to the next."""
        if len(times) == 0:
            return 0.0
        step = np.diff(
            times, append=times[-1] + (np.median(np.diff(times)) if len(times) > 1 else 0.1)
        )
        return float(step[with_face].sum())
