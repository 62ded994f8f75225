"""Contract stand-in for Practical-RIFE inference_video.py (commit 17d8c7a), placed as <clone>/inference_video.py
of a fake clone. It accepts exactly the upstream argument list (the mirror parser and upstream's asserts),
imports the model code from `train_log` the way upstream does, reads flownet.pkl from --model, fails
where upstream fails (sk-video's np.float on NumPy >= 1.24, `import moviepy.editor` in the audio step),
and writes what upstream writes: (N-1)*multi+1 frames at fps*multi as MPEG-4 Part 2, under --output or
upstream's default name, then the audio merge through ./temp of its cwd, which it deletes."""

import os
import shutil
import subprocess
import sys

sys.path.insert(1, os.environ["RAV_REPO"])
sys.path.insert(1, os.path.join(os.environ["RAV_REPO"], "tests"))

import numpy as np  # noqa: E402

from replace_actor_video.upstream.rife.mirror_inference_video import apply_upstream_rules, build_parser  # noqa: E402
from standins._media import probe_frames_fps  # noqa: E402


def transferAudio(sourceVideo, targetVideo):  # noqa: N802,N803 (upstream's names and steps, without a shell)
    import moviepy.editor  # noqa: F401  (unused upstream too; moviepy 2 has no moviepy.editor)
    tempAudioFileName = "./temp/audio.mkv"
    if os.path.isdir("temp"):
        shutil.rmtree("temp")
    os.makedirs("temp")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", sourceVideo, "-c:a", "copy", "-vn", tempAudioFileName])
    targetNoAudio = os.path.splitext(targetVideo)[0] + "_noaudio" + os.path.splitext(targetVideo)[1]
    os.rename(targetVideo, targetNoAudio)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", targetNoAudio, "-i", tempAudioFileName, "-c", "copy", targetVideo])
    if os.path.getsize(targetVideo) == 0:
        os.rename(targetNoAudio, targetVideo)
        print("Audio transfer failed. Interpolated video will have no audio")
    else:
        os.remove(targetNoAudio)
    shutil.rmtree("temp")


def main():
    args = apply_upstream_rules(build_parser().parse_args())
    from train_log.RIFE_HDv3 import Model  # resolved against sys.path[0], the clone, as upstream

    model = Model()
    model.load_model(args.modelDir, -1)
    print("Loaded 3.x/4.x HD model.")
    assert args.video is not None and not args.png, "the stand-in covers video → video only"
    frames, fps, _w, _h = probe_frames_fps(args.video)
    # sk-video's FFmpegReader parses the rate with np.float (removed in NumPy 1.24)
    np.float(fps)  # noqa: NPY001
    fps_not_assigned = args.fps is None
    out_fps = fps * args.multi if fps_not_assigned else args.fps
    video_path_wo_ext, _ext = os.path.splitext(args.video)
    vid_out_name = args.output or "{}_{}X_{}fps.{}".format(video_path_wo_ext, args.multi, int(np.round(out_fps)), args.ext)
    written = (frames - 1) * args.multi + 1
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", args.video, "-map", "0:v:0", "-vf", f"fps={fps * args.multi}",
                    "-frames:v", str(written), "-r", str(out_fps), "-c:v", "mpeg4", "-q:v", "3", vid_out_name], check=True)
    print(f"{video_path_wo_ext}.{args.ext}, {frames} frames in total, {fps}FPS to {out_fps}FPS", flush=True)
    if not args.png and fps_not_assigned and args.video is not None:
        try:
            transferAudio(args.video, vid_out_name)
        except Exception:
            print("Audio transfer failed. Interpolated video will have no audio")
            targetNoAudio = os.path.splitext(vid_out_name)[0] + "_noaudio" + os.path.splitext(vid_out_name)[1]
            os.rename(targetNoAudio, vid_out_name)


main()
