from datactl.cli.app import run

run()
