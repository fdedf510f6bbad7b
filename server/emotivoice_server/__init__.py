"""The EmotiVoice inference server: a Flask app under gunicorn that loads the model eagerly.

The app never does tensor math; it drives `emotivoice_tts` (the model package) and reports
honestly on /ready whether that model is loaded and warmed up.
"""
