"""The application floor of vlora-eval: the command-line tool (cli/), what combines evaluation, training
and FLOPs (workflows/), and the data they ship (the sweep configs, configs/). A namespaced home, so the
installed package adds no generic top-level module names (`cli`, `workflows`) to an environment."""
