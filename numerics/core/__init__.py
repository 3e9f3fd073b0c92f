"""The paper's objects, batched and float64: MDPs and distributions, the
Algorithm 1 stream of windows and prompts, teachers, the linear
self-attention block, models, and every tolerance."""
