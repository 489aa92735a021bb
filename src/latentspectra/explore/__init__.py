"""`latentspectra explore`: a local web page to read and move through a latent space.

- `session`: what the page computes, without HTTP (`ExploreSession`: views of latents, moves, strips, rotations);
- `fitting`: the direction methods, fitted on first use in the background and cached on disk (`MethodStore`);
- `images`: PNG out, uploaded images in (size limits checked before decoding);
- `names`: what the page calls the networks, and the server's paths no answer may show (`PublicNames`);
- `start`: what a server loads once (`open_session`);
- `app`: the FastAPI application over a session (`create_app`), its JSON API and OpenAPI schema;
- `server`: uvicorn on a socket bound first (`bind`, `serve`, `serving`);
- `static/`: the page (HTML, JavaScript, CSS) and the vendored Chart.js with its license.
"""

from .app import create_app
from .server import bind, serve, serving
from .session import ExploreSession, View
from .start import open_session

__all__ = ["ExploreSession", "View", "bind", "create_app", "open_session", "serve", "serving"]
