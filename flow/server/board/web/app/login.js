// The login page: the token is sent once; the server answers with an HttpOnly session cookie.
const form = document.getElementById('login-form');
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.textContent = '';
  const res = await fetch('/board/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ token: document.getElementById('token').value }),
  });
  if (res.ok) {
    window.location.assign('/');
    return;
  }
  const answer = await res.json().catch(() => ({}));
  error.textContent = answer.retmsg || `login refused (${res.status})`;
});
