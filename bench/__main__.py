import sys

from jacobian_nn._console import run_main  # quiet when the output is closed early (| head)

from . import main

sys.exit(run_main(main))
