// "Sign with my card" on the bank's login-code and transfer pages (docs/bank.md).
//
// The button sends this page's challenge id, and nothing else, to the customer's local
// signing service (`reader-bridge serve`, the address in the button's data-service). The
// service asks the bank itself what the challenge signs, shows it with this page's origin in
// its own window, asks for the PIN there, and answers with the code, which is bound to the
// origin the browser reports for this page. The script then fills the code field and sends the
// form. Without scripts the button stays hidden and the page works by copy and paste.
'use strict';

document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('sign-service');
  var button = document.getElementById('sign-with-card');
  var status = document.getElementById('sign-status');
  if (!box || !button || !status || !button.form) {
    return;
  }
  var form = button.form;
  var service = button.getAttribute('data-service');
  box.hidden = false;

  button.addEventListener('click', function () {
    button.disabled = true;
    status.textContent = 'Look at the window of reader-bridge serve: check what it shows, confirm there and enter your PIN.';
    fetch(service + '/v1/sign', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ challenge_id: form.elements.challenge_id.value }),
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (response) {
      return response.json().then(function (body) {
        return { ok: response.ok, body: body };
      }, function () {
        return { ok: false, body: null };
      });
    }, function () {
      throw new Error('the signing service at ' + service + ' does not answer: is reader-bridge serve running?');
    }).then(function (answer) {
      if (!answer.ok || !answer.body || typeof answer.body.code !== 'string') {
        throw new Error(answer.body && answer.body.message ? answer.body.message : 'the signing service refused');
      }
      form.elements.code.value = answer.body.code;
      status.textContent = 'Signed by your card. Sending the code\u2026';
      form.submit();
    }).catch(function (e) {
      status.textContent = 'Not signed: ' + e.message + '. You can still type the code by hand.';
      button.disabled = false;
    });
  });
});
