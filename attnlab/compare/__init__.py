"""The Transformer, BERT and GPT side by side, and the papers behind each."""
