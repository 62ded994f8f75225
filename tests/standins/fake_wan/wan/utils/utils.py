"""wan/utils/utils.py: save_video writes the generated video (here: a test pattern with the video's frame count
and size, at the fps it is given, as upstream always writes 30 fps)."""
import argparse
import os


def save_video(tensor, save_file=None, fps=30, suffix=".mp4", nrow=8, normalize=True, value_range=(-1, 1)):
    if os.environ.get("STANDIN_SAVE_FAILS"):
        print("save_video failed, error: stand-in", flush=True)  # upstream swallows the error and returns
        return
    from standins._media import testsrc_video

    video = tensor[0]
    testsrc_video(save_file, width=video.width, height=video.height, frames=video.frames, fps=fps)


def merge_video_audio(video_path, audio_path):
    raise AssertionError("s2v only")


def str2bool(v):
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected (True/False)")
