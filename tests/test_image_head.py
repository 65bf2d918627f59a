"""DreamDiffusion's EEG conditioning of a stock diffusers UNet."""

import torch

from eegbench.models.image_head import EEGConditioner, attach_time_branch, trainable_unet_parameters


def tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=24,
                                attention_head_dim=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))


def test_context_has_the_text_encoders_shape():
    cond = EEGConditioner(tokens=128, width=40, context_length=77, cross_attention_dim=24, clip_dim=12)
    context = cond(torch.randn(3, 128, 40))
    assert context.shape == (3, 77, 24) and cond.clip_embedding(context).shape == (3, 12)


def test_time_branch_conditions_the_timestep_embedding():
    unet = tiny_unet()
    cond = EEGConditioner(tokens=16, width=8, context_length=5, cross_attention_dim=24, clip_dim=4,
                          time_embed_dim=unet.time_embedding.linear_2.out_features)
    latents, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 10])
    context = cond(torch.randn(2, 16, 8))
    plain = unet(latents, t, encoder_hidden_states=context).sample
    handles = attach_time_branch(unet, cond)
    with torch.no_grad():
        cond.time_branch.weight.mul_(50)
    branched = unet(latents, t, encoder_hidden_states=context).sample
    assert not torch.allclose(plain, branched)
    for h in handles:
        h.remove()
    torch.testing.assert_close(unet(latents, t, encoder_hidden_states=context).sample, plain)


def test_only_cross_attention_and_its_norms_train():
    unet = tiny_unet()
    names = {id(p): n for n, p in unet.named_parameters()}
    chosen = [names[id(p)] for p in trainable_unet_parameters(unet)]
    assert chosen and all(".attn2." in n or ".norm2." in n for n in chosen)
    assert all("transformer_blocks" in n for n in chosen)  # resnets' norm2 stays frozen
    assert any(".attn2.to_k." in n for n in chosen) and any(".norm2." in n for n in chosen)
