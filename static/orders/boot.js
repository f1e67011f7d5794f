// Before the first paint (loaded without defer from <head>): "scripts run", so the controls
// that need the script show, and the remembered light or dark theme. A file, not an inline
// script, so the Content-Security-Policy can forbid inline scripts.
document.documentElement.classList.remove("no-js");
try {
  const theme = localStorage.getItem("osc-theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
} catch (e) {
  // storage refused (private mode): the default theme
}
