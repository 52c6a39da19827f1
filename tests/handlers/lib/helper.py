NAME = "from python_path"
