"""Every operation a user can ask for, once: ``api.Ops`` is the protocol, ``local.LocalOps``
runs it in this process, ``remote.RemoteOps`` asks a flow server over HTTP."""
