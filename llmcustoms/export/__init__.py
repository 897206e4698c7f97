"""Taking a trained model home: adapter copy, merged weights, GGUF + Ollama Modelfile."""
