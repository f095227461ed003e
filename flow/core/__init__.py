"""The ground floor: what every other package may import, and which imports nothing else
of the project (errors, the registry helper, ``Party``, typed service settings, the audit
hook). ``components``, ``backends`` and ``federation`` reach ``flow`` only through here."""
