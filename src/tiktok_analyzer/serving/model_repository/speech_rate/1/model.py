from tiktok_analyzer.serving.adapter import make_model

TritonPythonModel = make_model("speech_rate")
