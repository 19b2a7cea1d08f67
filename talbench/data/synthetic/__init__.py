"""The embedded synthetic TAL benchmark (issue 3): a controlled dataset in the ActionFormer THUMOS14 layout
whose latent factors (phases, context, instances) are known for every snippet.  See docs/synthetic.md."""

from talbench.data.synthetic.config import SynthConfig, parse_config
from talbench.data.synthetic.generate import SynthReport, generate, read_latents
from talbench.data.synthetic.taxonomy import PHASES

__all__ = ["PHASES", "SynthConfig", "SynthReport", "generate", "parse_config", "read_latents"]
