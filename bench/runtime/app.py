# The hands-on's seed app, as it ran: `python app.py` (Flask's own server).
import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello Container World! " + str(tuple(os.uname()))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
