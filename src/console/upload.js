// Upload a release (with a progress bar: XMLHttpRequest's upload progress) and, optionally,
// publish it with stages at once.

import { post, uploadRelease } from './api.js';
import { bytes, errorBox, fill, h, section } from './ui.js';
import { publishBody, publishFields } from './release.js';

export async function render({ main, signIn }) {
  const status = h('div', { id: 'upload-status' });
  const progress = h('progress', { id: 'upload-progress', max: 100, value: 0 });
  const progressText = h('span', { id: 'upload-progress-text', class: 'muted' }, '');
  const publishNow = h('input', { id: 'publish-now', type: 'checkbox', checked: true });
  const rollout = await publishFields();
  publishNow.addEventListener('change', () => { rollout.disabled = !publishNow.checked; });

  const form = h('form', { id: 'upload-form' }, h('div', { class: 'columns' },
    h('fieldset', {},
      h('legend', {}, 'Image'),
      h('label', {}, 'File ', h('input', { id: 'file', type: 'file', required: true })),
      h('label', {}, 'Version ', h('input', { id: 'version', required: true, placeholder: '1.4.0' })),
      h('label', {}, 'Hardware (comma separated) ', h('input', { id: 'hardware', required: true, placeholder: 'nw-s1' })),
      h('label', {}, 'Installs from version (optional) ', h('input', { id: 'min-from-version', placeholder: '1.2.0' })),
      h('label', { class: 'check' }, h('input', { id: 'mandatory', type: 'checkbox' }), ' Mandatory'),
      h('label', {}, 'Release notes ', h('textarea', { id: 'release-notes', rows: 3 }))),
    h('div', {}, h('label', { class: 'check' }, publishNow, ' Publish after the upload'), rollout)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'upload' }, 'Upload')),
    h('div', { class: 'progress' }, h('label', { for: 'upload-progress' }, 'Upload'), progress, progressText));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = (id) => form.querySelector(`#${id}`).value.trim();
    const file = form.querySelector('#file').files[0];
    const metadata = {
      version: value('version'),
      hardware: value('hardware').split(/[\s,]+/).filter(Boolean),
      mandatory: form.querySelector('#mandatory').checked,
    };
    if (value('release-notes')) metadata.release_notes = value('release-notes');
    if (value('min-from-version')) metadata.min_from_version = value('min-from-version');
    const button = form.querySelector('#upload');
    button.disabled = true;
    fill(status);
    try {
      const { status: code, body: release } = await uploadRelease(metadata, file, (sent, total) => {
        progress.value = Math.round((sent / total) * 100);
        progressText.textContent = `${bytes(sent)} of ${bytes(total)} (${progress.value} %)`;
      });
      progress.value = 100;
      progressText.textContent = code === 200 ? 'Uploaded before: the same version and bytes.' : `Uploaded: ${bytes(release.size)}, SHA-256 ${release.sha256.slice(0, 12)}…`;
      if (publishNow.checked) {
        const created = await post(`/v1/admin/firmware/${release.id}/publish`, publishBody(form));
        location.hash = `#/rollout/${created.id}`;
      } else {
        location.hash = `#/release/${release.id}`;
      }
    } catch (error) {
      fill(status, errorBox(error, signIn));
    } finally {
      button.disabled = false;
    }
  });
  fill(main, h('h1', {}, 'Upload a release'), status, section('New release', form));
  return null;
}
