"""The dashboard in a real browser: headless Chromium driven by Selenium."""
