__import__("sarstack.cli", fromlist=["run_script"]).run_script(__file__)
