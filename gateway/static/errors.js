// An error meant for the person at the page: its title and message go into the alert as they are.

export class UserError extends Error {
  constructor(title, message) {
    super(message);
    this.title = title;
  }
}
