"""auth-service: the authentication gate a reverse proxy calls on every request."""
