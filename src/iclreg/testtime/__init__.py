"""Test-time computing for in-context regressors: stochastic decoding of chains of thought
(Chen, Lu, Wu, Zou, arXiv 2508.07571; our construction where the paper is unknown).

Decoders give the deterministic step w_{t+1} = F(w_t), noises make it a sampler, ``decode``
draws N chains for each of B prompts at once, techniques combine the N answers, and
``evaluate`` measures the result against N.
"""

from .decode import decode, decode_path
from .decoders import DECODERS, ChainOfThoughtDecoder, Decoder, GDDecoder, gradient
from .evaluate import evaluate
from .noises import NOISES, Additive, Greedy, Multiplicative, Noise, Support
from .techniques import TECHNIQUES, Best, Mean, Technique, Vote, vote_index

__all__ = [
    "DECODERS",
    "NOISES",
    "TECHNIQUES",
    "Additive",
    "Best",
    "ChainOfThoughtDecoder",
    "Decoder",
    "GDDecoder",
    "Greedy",
    "Mean",
    "Multiplicative",
    "Noise",
    "Support",
    "Technique",
    "Vote",
    "decode",
    "decode_path",
    "evaluate",
    "gradient",
    "vote_index",
]
