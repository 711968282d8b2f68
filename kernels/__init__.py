"""Pure, jit-compiled array functions of jaxvac: no I/O, no file names, no globals."""
