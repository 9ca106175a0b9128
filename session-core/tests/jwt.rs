//! JwtResolver against a real JWKS server.
