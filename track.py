"""Track one object in a video file or a folder of frames (see tracking/track.py):

    python track.py --config configs/grm.py:vitb_256 --checkpoint DIR \
        --input video.mp4 --init 120,80,40,60 --out out.mp4
"""
from tracking.track import run

if __name__ == '__main__':
    run()
