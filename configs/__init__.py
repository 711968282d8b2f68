"""The built-in configs (dr8.toml: the paper's recipe; demo.toml: the demo), installed as jaxvac.configs."""
