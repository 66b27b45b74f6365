"""The model code both tracks share: the one training loop (`engine`), what every model
shares (`backbone`), the two-way classifiers (`classify`) and the causal LMs with the one
decoding loop and teacher-forced scoring (`generate`). Stages (`ws2s.stages`) call these."""
