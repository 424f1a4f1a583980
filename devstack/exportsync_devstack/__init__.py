"""The local stand-in for AWS: moto's server plus an API Gateway emulator on loopback."""
