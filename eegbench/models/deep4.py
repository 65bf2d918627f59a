"""Deep4Net (Schirrmeister et al. 2017) from braindecode, used as an EEG encoder."""

from __future__ import annotations

from torch import nn


class Deep4Encoder(nn.Module):
    """braindecode's Deep4Net mapping ``[B, channels, times]`` to ``[B, out_dim]`` features.

    The network's final convolution produces ``out_dim`` maps; when it yields several time
    steps (dense predictions) they are averaged, as EEG-CLIP does.
    """

    def __init__(self, n_chans: int, n_times: int, out_dim: int = 128, **deep4_kwargs):
        super().__init__()
        from braindecode.models import Deep4Net

        self.out_dim = out_dim
        self.net = Deep4Net(n_chans=n_chans, n_outputs=out_dim, n_times=n_times,
                            final_conv_length="auto", **deep4_kwargs)

    def forward(self, x):
        out = self.net(x)
        return out.mean(dim=-1) if out.dim() == 3 else out
