"""ffmpeg helpers shared by the stand-ins (they write what upstream writes, with real encoders)."""

import subprocess


def testsrc_video(path, *, width, height, frames, fps, pattern="testsrc2"):
    source = f"{pattern}{':' if '=' in pattern else '='}size={width}x{height}:rate={fps}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source,
                    "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)


def probe_frames_fps(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                          "stream=nb_read_packets,avg_frame_rate,width,height", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout.strip().split(",")
    width, height, rate, frames = out
    num, den = rate.split("/")
    return int(frames), float(num) / float(den), int(width), int(height)
