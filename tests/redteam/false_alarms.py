"""Stock torch.save outputs that ckpt calls CKPT002 ("Do not load this file"):
  qdyn_lstm.pt   torch.ao.quantization.quantize_dynamic of an LSTM, saved whole: its
                 torch.ScriptObject holds __torch__.torch.classes.rnn.CellParamsBase (not in
                 policy.REVIEWED_TORCHBIND, which only lists the quantized.* packed params)
  ellipsis.pt    a config value `...` / NotImplemented: builtins.Ellipsis / builtins.NotImplemented
  silu_layer.pt  nn.TransformerEncoderLayer(activation=F.silu): torch.nn.functional.silu
  lazy.pt        an un-materialised nn.LazyLinear (UninitializedParameter, RemovableHandle)"""
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.save(torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.LSTM(2, 2)), {nn.LSTM},
                                                  dtype=torch.qint8), "qdyn_lstm.pt")
torch.save({"weight": torch.zeros(2), "index": (Ellipsis, 0), "pad": NotImplemented}, "ellipsis.pt")
torch.save(nn.TransformerEncoderLayer(8, 2, 8, activation=F.silu), "silu_layer.pt")
torch.save(nn.LazyLinear(2), "lazy.pt")
print("wrote qdyn_lstm.pt ellipsis.pt silu_layer.pt lazy.pt")
