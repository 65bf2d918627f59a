"""Deep4Net (Schirrmeister et al. 2017) from braindecode, used as an EEG encoder."""

from __future__ import annotations

from torch import nn


class Deep4Encoder(nn.Module):
    """braindecode's Deep4Net mapping ``[B, channels, times]`` to ``[B, out_dim]`` features.

    The network's final convolution produces ``out_dim`` maps; when it yields several time
    steps they are averaged, as EEG-CLIP does. ``dense`` removes the strides (braindecode's
    ``to_dense_prediction_model``) so there is one output per input shift, as in EEG-CLIP; without
    it the outputs are a strided subset of those, 3.5-8x cheaper to train on a CPU
    (``scripts/bench_eegclip.py`` times both).
    """

    def __init__(self, n_chans: int, n_times: int, out_dim: int = 128, final_conv_length: int | str = "auto",
                 dense: bool = False, **deep4_kwargs):
        super().__init__()
        from braindecode.models import Deep4Net

        self.out_dim = out_dim
        self.net = Deep4Net(n_chans=n_chans, n_outputs=out_dim, n_times=n_times,
                            final_conv_length=final_conv_length, **deep4_kwargs)
        if dense:
            self.net.to_dense_prediction_model()

    def forward(self, x):
        out = self.net(x)
        return out.mean(dim=-1) if out.dim() == 3 else out
