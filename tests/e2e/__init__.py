"""End-to-end tests: the course as a learner sees it, in JupyterLab, in a real (headless) browser."""
