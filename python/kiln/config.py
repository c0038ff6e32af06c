"""Where the client finds its server, token and CA: the same places as the
``kiln`` CLI, so a user signed in with ``kiln login`` needs nothing more.

- server: the argument, else ``KILN_SERVER``, else the CLI's default
  ``http://127.0.0.1:7676`` (the farm ``kiln up`` starts);
- token: the argument, else ``KILN_TOKEN``, else the one ``kiln login`` or
  ``kiln up`` kept for that server in ``~/.config/kiln/tokens/HOST_PORT``;
- CA: the argument, else ``KILN_CA``, else the one ``kiln login`` pinned for
  that server in ``~/.config/kiln/ca/HOST_PORT.pem``, else the system's.
"""

import os
import ssl

from .errors import ConfigurationError

DEFAULT_SERVER = "http://127.0.0.1:7676"


def is_loopback(host):
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    if host.startswith("127."):
        return all(p.isdigit() for p in host.split("."))
    return host in ("::1", "0:0:0:0:0:0:0:1")


def normalize_url(url):
    """``farm:7676`` -> ``https://farm:7676``; loopback without a scheme is
    plaintext, as in the CLI. Trailing slashes go."""
    url = url.strip().rstrip("/")
    if "://" in url:
        return url
    host = url.rsplit(":", 1)[0] if ":" in url else url
    return ("http://" if is_loopback(host) else "https://") + url


def split_url(url):
    """(scheme, host without brackets, port) of a normalized URL."""
    scheme, rest = url.split("://", 1)
    authority = rest.split("/", 1)[0]
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    elif ":" in authority:
        host, port = authority.rsplit(":", 1)
    else:
        host, port = authority, ""
    if not port:
        port = "443" if scheme == "https" else "80"
    if not host:
        raise ConfigurationError(
            "%r names no host: write it like https://farm:7676" % url)
    try:
        port = int(port)
    except ValueError:
        raise ConfigurationError(
            "%r is not a server address: write it like https://farm:7676" % url)
    return scheme, host, port


def check_url(url):
    """The server's URL, normalized, refusing what the CLI refuses."""
    url = normalize_url(url)
    scheme, host, port = split_url(url)
    if scheme == "http" and not is_loopback(host):
        raise ConfigurationError(
            "%s: plaintext is only for loopback; use https://%s:%d" % (url, host, port))
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            "%r is not a server address: write it like https://farm:7676" % url)
    return url


def _config_base(ignore_empty):
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg is not None and not (ignore_empty and xdg == ""):
        return xdg
    home = os.environ.get("HOME")
    if home is None:
        return None
    return os.path.join(home, ".config")


def token_file(url):
    """``~/.config/kiln/tokens/HOST_PORT``, where the CLI keeps the token
    for ``url`` (``None`` without a home)."""
    base = _config_base(ignore_empty=False)
    if base is None:
        return None
    _, host, port = split_url(normalize_url(url))
    return os.path.join(base, "kiln", "tokens", "%s_%d" % (host, port))


def pinned_ca_file(url):
    """``~/.config/kiln/ca/HOST_PORT.pem``, where ``kiln login`` keeps the
    CA it trusts for ``url`` (``None`` for plaintext or without a home)."""
    scheme, host, port = split_url(normalize_url(url))
    base = _config_base(ignore_empty=True)
    if scheme != "https" or base is None:
        return None
    return os.path.join(base, "kiln", "ca", "%s_%d.pem" % (host.lower(), port))


def resolve(server=None, token=None, ca=None):
    """(url, token or None, CA file or None) as the CLI would choose them."""
    url = check_url(server or os.environ.get("KILN_SERVER") or DEFAULT_SERVER)
    if token is None:
        token = os.environ.get("KILN_TOKEN") or None
    if token is None:
        path = token_file(url)
        if path and os.path.isfile(path):
            with open(path) as f:
                token = f.read().strip() or None
    if token is not None:
        token = token.strip()
    if ca is None:
        ca = os.environ.get("KILN_CA") or None
    if ca is None:
        path = pinned_ca_file(url)
        if path and os.path.isfile(path):
            ca = path
    return url, token, ca


def ssl_context(url, ca):
    """A TLS context trusting ``ca`` only (the pinned CA), or the system's
    roots without one; ``None`` for plaintext."""
    if not url.startswith("https://"):
        return None
    if ca is not None and not os.path.isfile(ca):
        raise ConfigurationError(
            "cannot read the CA file %s: pass ca= (or KILN_CA) naming the server's "
            "ca.pem, or run `kiln login %s`" % (ca, url))
    try:
        return ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as e:
        raise ConfigurationError("cannot read the CA file %s: %s" % (ca, e))
