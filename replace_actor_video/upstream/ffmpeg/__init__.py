"""ffmpeg as an interpolator (minterpolate.py): the fallback that needs nothing but ffmpeg. ffmpeg's other
uses (probing, encoding, muxing) are media/, which every stage shares."""
