from datactl.cli.entry import run

run()
