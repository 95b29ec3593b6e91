"""Prove the runtime and device_bench on a 64-bit Arm userland without a Raspberry Pi.

``python -m device_bench.pi ARTIFACT... --out check.json`` builds (once, cached) an arm64
Debian root, installs the aarch64 wheels of the runtime's dependencies in it without network,
runs ``device_bench`` and the per-query parity probe (:mod:`device_bench.pi.probe`) inside it
under qemu-user, does the same on this machine, and compares the two (:mod:`device_bench.pi.parity`).
Timings measured under emulation are labelled "emulated (qemu-user)": they are not Pi figures.

Only :mod:`device_bench.pi.probe` runs inside the emulated root; it imports ``runtime`` and
numpy only, like the rest of ``device_bench``.
"""
