"""Cost of the embedded prior's conditioning variants: one forward + backward at batch 64, 32², interleaved.

    python scripts/bench_prior_arch.py   # prints s/step per variant and the ratio to the step-3400 (v1) layout
"""
import time, torch
from diffusers import UNet2DConditionModel
torch.set_num_threads(2)
def build(down, up, text=False):
    torch.manual_seed(0)
    kw = dict(addition_embed_type="text", addition_embed_type_num_heads=4) if text else {}
    return UNet2DConditionModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32,64,128,128),
        layers_per_block=1, down_block_types=down, up_block_types=up, cross_attention_dim=128, attention_head_dim=32, norm_num_groups=16, **kw)
A=("DownBlock2D","DownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D"); Au=("CrossAttnUpBlock2D","CrossAttnUpBlock2D","UpBlock2D","UpBlock2D")
C=("DownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D"); Cu=("CrossAttnUpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D","UpBlock2D")
Dd=("CrossAttnDownBlock2D",)*4; Du=("CrossAttnUpBlock2D",)*4
variants={"A old":build(A,Au),"B +text":build(A,Au,True),"C +text+16":build(C,Cu,True),"D +text+16+32":build(Dd,Du,True)}
x=torch.randn(64,3,32,32); t=torch.randint(0,1000,(64,)); e=torch.randn(64,24,128)
res={k:[] for k in variants}
for rep in range(3):
    for k,m in variants.items():
        t0=time.time(); out=m(x,t,encoder_hidden_states=e).sample; out.square().mean().backward(); res[k].append(time.time()-t0)
for k,v in res.items():
    n=sum(p.numel() for p in variants[k].parameters())
    print(k, f"params {n/1e6:.2f}M", "s/step", [round(a,2) for a in v], f"ratio {min(v)/min(res['A old']):.2f}")
