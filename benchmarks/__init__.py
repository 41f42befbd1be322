"""The coherence benchmark suite: cases, methods (ours, ffmpeg's, adversarial baselines), runner and reports."""
